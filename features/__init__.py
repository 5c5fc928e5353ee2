"""Audio loading, segmenting, librosa feature extractors, the feature table and its cache."""
