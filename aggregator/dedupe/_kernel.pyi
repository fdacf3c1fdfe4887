def fingerprint(
    normalised: str,
    a: bytes,
    b: bytes,
    lead_shingles: int,
    lead_permutations: int,
    rows_per_band: int,
    /,
) -> tuple[tuple[int, ...], int, tuple[int, ...], tuple[int, ...]]: ...
