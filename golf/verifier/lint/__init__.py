"""The records lint: rules per folder and track, the legality scan, significance statistics."""
