"""The one definition of every record format fewframes reads or writes.

`features` holds names and shapes, `raw` the YouTube-8M input formats,
`preprocessed` our compact dataset format, `views` the frame-subsampling rules and
`quantization` the official (de)quantization.
"""
