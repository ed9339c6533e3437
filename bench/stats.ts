/** The figures the benchmarks print. */

/** The q-quantile (0.5: the median) of xs, by nearest rank. */
export const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]

export const median = (xs: number[]) => quantile(xs, 0.5)
