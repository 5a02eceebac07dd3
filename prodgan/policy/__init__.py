"""Policy: the rules prodgan decides by, as pure functions (no MLflow, no network).

`gates` and `gate_file` judge evaluations against the gate file; `decision` is the typed record
every face renders; `chain` replays the signed audit chain against a registry snapshot;
`files` compares the files a record names with the files found.
"""
