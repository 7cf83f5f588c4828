"""golf.data: token shards, tokenizer and dataset export, Hub download, loaders."""
