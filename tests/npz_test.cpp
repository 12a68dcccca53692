// Placeholder until the NPZ tests land.
