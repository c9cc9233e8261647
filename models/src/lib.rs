//! Network specs, weights and the plaintext fixed-point oracle (see DESIGN.md section 4).
