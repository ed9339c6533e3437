/** Undoes XML escaping (the five entities and decimal and hex numeric references), for reading JUnit in tests. */
export const decodeXml = (text: string) =>
  text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&apos;', "'")
    .replace(/&#(\d+|x[0-9a-fA-F]+);/g, (_, n: string) => String.fromCodePoint(n.startsWith('x') ? Number.parseInt(n.slice(1), 16) : Number(n)))
    .replaceAll('&amp;', '&')
