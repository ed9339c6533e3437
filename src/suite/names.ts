/**
 * The suites `--suite` names rather than points at: pmemlab's own, and the upstream projects'
 * built into the image (upstream.ts defines them). Kept apart so that the matrix schema can tell
 * a name from a directory without loading the suites. A directory with one of these names is
 * given as ./NAME.
 */
export const BUILTIN = 'builtin'
export const UPSTREAM_SUITE_NAMES = ['ndctl'] as const

/** Whether a --suite value (or a matrix suite) names a suite instead of a directory. */
export const isNamedSuite = (spec: string) => spec === BUILTIN || (UPSTREAM_SUITE_NAMES as readonly string[]).includes(spec)
