// standing.js: the content kept on the clusters at all times for
// emergencies (docs/content.md, standing content), shared by the library
// and the emergency form, which should not load the library for it.

import { api } from './api.js';
import { t } from './i18n.js';
import { fmtNumber } from './ui.js';

/** standingList is GET /content/standing, or none where it is not kept. */
export async function standingList() {
  try {
    return await api('GET', '/content/standing');
  } catch (err) {
    if (err.status === 503) return { standing: [], always: [], max_bytes: 0 };
    throw err;
  }
}

/** standingReady says on how many of its clusters standing content is. */
export function standingReady(s) {
  return t('library.standing_ready', { ready: fmtNumber(s.ready), nodes: fmtNumber(s.nodes) });
}
