"""``golf data`` commands."""
import click


@click.group()
def data() -> None:
    """Get token shards and tokenizers: download them from the Hub or build them from your documents."""
