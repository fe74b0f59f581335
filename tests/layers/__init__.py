"""The tests of handgrad.layers, one file per module of src/handgrad/layers/ (test_conv.py: conv.py).
The checks every layer gets from its row in tests/layer_cases.py are in tests/test_layer_cases.py.

A package, so that these files may share a name with a test file elsewhere in tests/."""
