"""The ``golf`` command line: the only entry point."""
from __future__ import annotations

import click

from golf import __version__
from golf.builder.cli import build
from golf.builder.importstate import import_state_cmd
from golf.data.cli import data
from golf.submission.cli import demo, plot, submit
from golf.trainer.cli import bench, train
from golf.verifier.cli import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="golf")
def main() -> None:
    """golf: train, pack, verify and submit OpenAI Parameter Golf entries.

    \b
    Typical path:
      golf data build|download   token shards + tokenizer
      golf train                 train the recurrent GPT recipe
      golf build                 quantize + pack an artifact under 16,000,000 bytes
      golf verify                re-score an artifact in a clean process; lint records
      golf submit                assemble a records folder
      golf plot                  loss / BPB curves of a run as a PNG
      golf demo                  all of the above on the embedded sample, on CPU
    """


main.add_command(data)
main.add_command(build)
main.add_command(import_state_cmd)
main.add_command(verify)
main.add_command(train)
main.add_command(bench)
main.add_command(submit)
main.add_command(plot)
main.add_command(demo)
