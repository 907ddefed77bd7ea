"""Model loading and the embedded tiny-model factory."""
