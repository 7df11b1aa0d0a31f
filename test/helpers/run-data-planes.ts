import { DATA_PLANES, type TestDataPlane } from './data-planes.js';

/** A data plane a scenario runs `srvlink run` on: the flags that choose it, and why it cannot run here. */
export interface RunDataPlane {
  name: TestDataPlane['name'];
  /** `--data-plane NAME`, for the srvlink command line. */
  args: string[];
  /** Descriptors one forwarded pair holds on this plane, as srvlink counts them against the open-file limit. */
  descriptorsPerPair: number;
  /** Set when the plane is not available (no addon): the scenario is skipped, saying why. */
  skip: string | undefined;
}

/**
 * Both data planes of `srvlink run`, native first (what `auto` takes when
 * the addon loads), for `describe.each` over the scenarios that forward
 * bytes: each runs once per plane, named in its summary line. The process
 * loads the same addon as this worker (build/Release, or
 * SRVLINK_NATIVE_ADDON), so the native plane is skipped here exactly when
 * `--data-plane native` would not start.
 */
export const RUN_DATA_PLANES: readonly RunDataPlane[] = (['native', 'js'] as const).map((name) => {
  const plane = DATA_PLANES.find((p) => p.name === name) as TestDataPlane;
  return { name, args: ['--data-plane', name], descriptorsPerPair: plane.plane.descriptorsPerPair, skip: plane.skip };
});
