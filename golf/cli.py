"""The ``golf`` command line: the only entry point."""
from __future__ import annotations

import click

from golf import __version__
from golf.builder.cli import build
from golf.builder.importstate import import_state_cmd
from golf.data.cli import data
from golf.doctor import doctor_command
from golf.errors import GolfError
from golf.plan import plan_command
from golf.submission.cli import demo, plot, submit
from golf.trainer.cli import bench, train
from golf.trainer.gpucheck import gpu_command
from golf.verifier.cli import verify


class _Golf(click.Group):
    """The command group: any :class:`GolfError` a command raises becomes one ``Error: ...`` line
    and exit status 1 (click's own error path), never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GolfError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Golf, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="golf")
def main() -> None:
    """golf: train, pack, verify and submit OpenAI Parameter Golf entries.

    \b
    Typical path:
      golf doctor                can this machine run the preset? (GPU, precision, compile, disk, network)
      golf plan                  params, FLOPs, memory, step time and steps in the cap, without training
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
bench.add_command(gpu_command)
main.add_command(submit)
main.add_command(plot)
main.add_command(demo)
main.add_command(doctor_command)
main.add_command(plan_command)
