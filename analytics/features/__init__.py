"""Pure feature functions over float64 numpy arrays: no Django, no I/O, no clock."""
