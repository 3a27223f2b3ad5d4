"""Tools around the product, never imported by it: the synthetic generator, the benchmarks and
the chaos run."""
