import type { RegisterConfig } from '../config/register-config.js';
import type { Logger } from '../core/logger.js';
import { parseHealthCheck } from '../registry/health-check.js';
import type { EtcdGateway } from '../registry/etcd-gateway.js';
import { Registration } from '../registry/registration.js';

/** A registration for `config`, started: its lease, keepalive and health check run until `close()`. */
export async function startRegistration(client: EtcdGateway, config: RegisterConfig, log: Logger): Promise<Registration> {
  const registration = new Registration({
    client,
    key: config.key,
    value: config.value,
    ttl: config.ttl,
    ...(config.check === undefined ? {} : { check: parseHealthCheck(config.check, { timeout: config.checkTimeout, send: config.checkSend, expect: config.checkExpect }) }),
    interval: config.checkInterval,
    rise: config.rise,
    fall: config.fall,
    logger: log.child({ component: 'registration' }),
  });
  await registration.start();
  return registration;
}
