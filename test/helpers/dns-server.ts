/**
 * A DNS server on 127.0.0.1 (UDP) for the CIMD resolver's tests (src/cimd/dns.ts): it answers A
 * and AAAA questions from a table (NXDOMAIN for a name it does not know), or never answers at all
 * (`silent`), and records every question it receives — the proof of what P asked, and that a
 * name P answers itself caused no query. Nothing leaves the machine.
 */
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';

export interface DnsQuestion {
  name: string;
  type: string;
}

export interface DnsServer {
  /** `127.0.0.1:<port>`, for `dnsServers` / `servers` */
  address: string;
  questions: DnsQuestion[];
  close(): Promise<void>;
}

export type DnsTable = Record<string, { A?: string[]; AAAA?: string[] }>;

export async function dnsServer(table: DnsTable | 'silent'): Promise<DnsServer> {
  const socket = createSocket('udp4');
  const questions: DnsQuestion[] = [];
  socket.on('message', (message, from) => {
    const query = packet.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    questions.push({ name: question.name, type: question.type });
    if (table === 'silent') return;
    const entry = table[question.name.toLowerCase()];
    const data = question.type === 'A' ? entry?.A : question.type === 'AAAA' ? entry?.AAAA : undefined;
    const answers = (data ?? []).map((address) => ({ type: question.type as 'A' | 'AAAA', name: question.name, ttl: 60, class: 'IN' as const, data: address }));
    const reply = packet.encode({
      id: query.id,
      type: 'response',
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (entry ? 0 : 3), // rcode 3: NXDOMAIN
      questions: [question],
      answers,
    });
    socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    questions,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
