"""The layout explorer: which keys each query sees, as text (`explorer`), PNG (`pictures`) and an
interactive HTML page (`page`), and the `python -m led_ref` command line (`cli`)."""
