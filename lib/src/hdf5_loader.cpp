// Placeholder until the HDF5 loader lands.
