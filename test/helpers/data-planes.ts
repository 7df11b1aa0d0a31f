import { loadNativeAddon } from '../../src/core/native-addon.js';
import { jsDataPlane, type DataPlane } from '../../src/proxy/data-plane.js';
import { openDataPlane } from '../../src/proxy/native-data-plane.js';

/** A data plane a forwarder suite runs on, or why it cannot run here. */
export interface TestDataPlane {
  name: 'js' | 'native';
  plane: DataPlane;
  /** Who accepts the forwarder's clients: a net.Server (`js`), or C (`native`, the native plane's default). */
  accept: 'js' | 'native';
  /** Set when the plane is not available (no addon): the suite is skipped, saying why. */
  skip: string | undefined;
}

const native = openDataPlane('native', () => loadNativeAddon());

const nativeSkip = native.unavailable === undefined ? undefined : `skipped: ${native.unavailable}`;

/** Both data planes, the native one with either accept, for `describe.each`: the forwarder must behave the same on each. */
export const DATA_PLANES: readonly TestDataPlane[] = [
  { name: 'js', plane: jsDataPlane, accept: 'js', skip: undefined },
  { name: 'native', plane: native.plane, accept: 'js', skip: nativeSkip },
  { name: 'native', plane: native.plane, accept: 'native', skip: nativeSkip },
];
