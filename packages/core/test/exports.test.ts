import { describe, expect, it } from '@jest/globals';
import * as core from '@tessera/core';

describe('@tessera/core public API', () => {
  it('exports exactly these values (update the snapshot only for a deliberate API change)', () => {
    expect(Object.keys(core).sort()).toMatchSnapshot();
  });
});
