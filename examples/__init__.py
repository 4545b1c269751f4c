"""Example front-ends for ``features.extract --arch examples.waveform_cnn:WaveformCNN`` (or a file path)."""
