import { loadNativeAddon } from '../../src/core/native-addon.js';
import { jsDataPlane, type DataPlane } from '../../src/proxy/data-plane.js';
import { openDataPlane } from '../../src/proxy/native-data-plane.js';

/** A data plane a forwarder suite runs on, or why it cannot run here. */
export interface TestDataPlane {
  name: 'js' | 'native';
  plane: DataPlane;
  /** Set when the plane is not available (no addon): the suite is skipped, saying why. */
  skip: string | undefined;
}

const native = openDataPlane('native', () => loadNativeAddon());

/** Both data planes, for `describe.each`: the forwarder must behave the same on either. */
export const DATA_PLANES: readonly TestDataPlane[] = [
  { name: 'js', plane: jsDataPlane, skip: undefined },
  { name: 'native', plane: native.plane, skip: native.unavailable === undefined ? undefined : `skipped: ${native.unavailable}` },
];
