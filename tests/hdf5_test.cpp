// Placeholder until the HDF5 tests land.
