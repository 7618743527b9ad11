"""Training: dataset readers now; models, distillation and export follow."""
