"""Data preparation, kept for ``python -m data_prep.<module>`` inside the checkout; the code is :mod:`mridiff.prep`."""
