"""The CLI commands: one module per `bertbench` subcommand, each `add_arguments(parser)` + `main(args)`."""
