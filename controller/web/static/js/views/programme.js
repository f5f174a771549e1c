// A screen still being built (docs/web.md lists what is done).

import { t } from '../i18n.js';
import { h, fill } from '../ui.js';

export async function render(ctx, main) {
  fill(main, h('p', { class: 'muted' }, t('common.soon')));
}
