//! Video: sources, codecs and recording.
