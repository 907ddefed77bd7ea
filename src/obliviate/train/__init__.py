"""Training: plain fine-tuning (to build models) and the unlearning trainer."""
