//! Tuning TRAFFIC thresholds on a trace (a later step).
