"""The streaming side: settings, the Faust app, agents, tables, metrics and the command line."""
