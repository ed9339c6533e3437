import type {Got} from 'got'

/** got, loaded on first use: importing it costs about 0.15 s of every start, and most commands download nothing. */
export async function loadGot(): Promise<Got> {
  return (await import('got')).default
}
