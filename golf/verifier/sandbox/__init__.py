"""The sandbox an artifact runs in: launcher (namespaces, binds), limits, cgroups, the audit-hook recorder."""
