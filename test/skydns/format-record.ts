import type { DnsRecord } from '../../src/dns/codec.js';

/**
 * A record in zone-file presentation (`owner ttl TYPE rdata`), so expected
 * answers in tables read like `dig` output. Names as the record carries them.
 */
export function formatRecord(record: DnsRecord): string {
  return `${record.name} ${record.ttl ?? '-'} ${record.type} ${formatData(record)}`;
}

function formatData(record: DnsRecord): string {
  switch (record.type) {
    case 'SRV':
      return `${record.data.priority ?? 0} ${record.data.weight ?? 0} ${record.data.port} ${record.data.target}`;
    case 'MX':
      return `${record.data.preference ?? 0} ${record.data.exchange}`;
    case 'SOA': {
      const d = record.data;
      return `${d.mname} ${d.rname} ${d.serial ?? 0} ${d.refresh ?? 0} ${d.retry ?? 0} ${d.expire ?? 0} ${d.minimum ?? 0}`;
    }
    case 'TXT': {
      const parts = Array.isArray(record.data) ? record.data : [record.data];
      return parts.map((part) => JSON.stringify(part.toString())).join(' ');
    }
    default:
      return typeof record.data === 'string' ? record.data : JSON.stringify(record.data);
  }
}
