"""Audio in: decoding and log-mel (``audio``), the datasets and their protocols (``datasets``,
``synthetic``), and the decode cache and model inputs (``decode``)."""
