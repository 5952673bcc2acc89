"""AGE and SGELA: self-supervised gait encodings with locality-aware attention (Rao et al.)."""
