// PHÁT KHẨN CẤP: the emergency screen. The emergency API (issue 5) is not
// on main yet; until it is, this screen says so plainly rather than
// pretending to send anything.

import { t } from '../i18n.js';
import { h, fill } from '../ui.js';

export async function render(ctx, main) {
  fill(main, h('h1', { style: 'color:var(--emergency)' }, t('nav.emergency')),
    h('div', { class: 'error-box', role: 'alert' }, t('emergency.pending_api')));
}
