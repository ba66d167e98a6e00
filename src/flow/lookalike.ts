/**
 * AT-17 / REG-10: a self-registered client can call itself "Claude". When a client's name
 * resembles a well-known MCP client while one of its redirect hosts is not that client's, the
 * consent page says so. Loopback and private-use redirects are never "theirs" or "not theirs":
 * the page already says "a program on this computer" for those.
 */

interface KnownClient {
  name: string;
  /** normalised name fragments that identify it */
  marks: string[];
  /** registrable domains its hosted redirect URIs use */
  domains: string[];
}

export const KNOWN_CLIENTS: KnownClient[] = [
  { name: 'Claude', marks: ['claude', 'anthropic'], domains: ['claude.ai', 'claude.com', 'anthropic.com'] },
  { name: 'ChatGPT', marks: ['chatgpt', 'openai'], domains: ['chatgpt.com', 'openai.com'] },
  { name: 'Cursor', marks: ['cursor', 'anysphere'], domains: ['cursor.com', 'cursor.sh', 'anysphere.co'] },
  { name: 'Visual Studio Code', marks: ['vscode', 'visualstudiocode', 'visualstudio'], domains: ['vscode.dev', 'visualstudio.com', 'microsoft.com'] },
  { name: 'GitHub Copilot', marks: ['copilot'], domains: ['github.com', 'githubcopilot.com', 'microsoft.com'] },
  { name: 'Windsurf', marks: ['windsurf', 'codeium'], domains: ['windsurf.com', 'codeium.com'] },
  { name: 'Gemini', marks: ['gemini'], domains: ['google.com', 'gemini.google.com'] },
  { name: 'MCP Inspector', marks: ['mcpinspector', 'modelcontextprotocol'], domains: ['modelcontextprotocol.io'] },
];

/** Lower-case, strip accents, separators and common digit/letter swaps ("C1aude" → "claude"). */
export function normaliseName(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/0/g, 'o')
    .replace(/[1!|]/g, 'l')
    .replace(/3/g, 'e')
    .replace(/4|@/g, 'a')
    .replace(/5|\$/g, 's')
    .replace(/rn/g, 'm')
    .replace(/[^a-z]/g, '');
}

function onDomain(host: string, domains: string[]): boolean {
  return domains.some((d) => host === d || host.endsWith(`.${d}`));
}

/**
 * The well-known client the name imitates, if any redirect URI goes to an https host that is not
 * that client's.
 */
export function lookalikeOf(clientName: string | undefined, redirectUris: readonly string[]): { imitates: string; foreignHosts: string[] } | undefined {
  if (!clientName) return undefined;
  const normalised = normaliseName(clientName);
  const known = KNOWN_CLIENTS.find((k) => k.marks.some((m) => normalised.includes(m)));
  if (!known) return undefined;
  const foreignHosts = redirectUris
    .map((u) => {
      try {
        return new URL(u);
      } catch {
        return undefined;
      }
    })
    .filter((u): u is URL => u?.protocol === 'https:')
    .map((u) => u.hostname)
    .filter((host) => !onDomain(host, known.domains));
  return foreignHosts.length ? { imitates: known.name, foreignHosts: [...new Set(foreignHosts)] } : undefined;
}
