"""Experiments as data: the TOML schema (`schema`), run ids (`ids`), plans (`plan`), sharding (`shards`),
external checkpoints as reference rows (`reference`)."""
