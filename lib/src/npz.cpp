// Placeholder until the NPZ reader lands.
