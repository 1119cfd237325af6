"""The treatment plant's rules: acceptance, treatment caps, capacity, certificates, load fate.

Pure code: no I/O, no clock (times are passed in), no randomness (ids are passed in).
"""
