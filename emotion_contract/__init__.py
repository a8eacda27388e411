"""The contract between the training package, the analyzer and the reports.

Training produces model files and the analyzer consumes them; the analyzer
writes Parquet and the reports read it. What both sides of each must agree on
lives here, and nothing else crosses between the packages:

- :mod:`.labels`: the seven emotions in model order.
- :mod:`.modelfile`: the metadata inside a ``.keras`` file.
- :mod:`.layers`: the custom layers a saved model may hold, and loading.
- :mod:`.shipped`: where the shipped model lives.
- :mod:`.schema`: the output tables' names and columns.
- :mod:`.extras`: what the optional installs provide, and the error naming one.
"""
