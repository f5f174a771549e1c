// Tài khoản: who I am, and changing my own password (every other session
// of mine ends, e.g. a phone signed in with the old one).

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, errorBox } from '../ui.js';

export async function render(ctx, main) {
  const current = h('input', { type: 'password', id: 'pw-current', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', id: 'pw-new', autocomplete: 'new-password', required: true, minlength: 10 });
  const again = h('input', { type: 'password', id: 'pw-again', autocomplete: 'new-password', required: true });
  const status = h('div', { id: 'pw-status', 'aria-live': 'polite' });
  fill(main, h('h1', {}, t('account.title')),
    h('p', { class: 'panel' }, ctx.scope(), ' · ', ctx.me.username),
    h('form', {
      class: 'panel', id: 'pw-form', onsubmit: async (e) => {
        e.preventDefault();
        if (next.value !== again.value) { fill(status, h('p', { class: 'error' }, t('account.mismatch'))); return; }
        try {
          const r = await api('POST', '/auth/password', { current_password: current.value, new_password: next.value });
          current.value = next.value = again.value = '';
          fill(status, h('p', {}, t('account.changed', { n: r.revoked })));
        } catch (err) { fill(status, errorBox(err)); }
      },
    }, h('h2', {}, t('account.change')),
    field(t('account.current'), current), field(t('account.new'), next, t('admin.password_hint')), field(t('account.again'), again),
    h('div', { class: 'row', style: 'margin-top:.6rem' }, h('button', { type: 'submit' }, t('account.submit'))), status));
}
