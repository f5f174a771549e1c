// Quản trị: users and roles, the area tree, and enrolling clusters — each
// part shown only to roles that may use it.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, fill, field, options, fmtDateTime, errorBox, errorText, toast, confirmDialog, credentialsText } from '../ui.js';

export async function render(ctx, main) {
  const parts = [];
  if (ctx.may('users.manage')) parts.push(await users(ctx));
  if (ctx.may('areas.manage')) parts.push(areas(ctx, () => render(ctx, main)));
  if (ctx.may('nodes.manage')) parts.push(await nodes(ctx));
  // Reached by an old link or a bookmark without the rights: say so,
  // rather than an empty page under the heading.
  fill(main, h('h1', {}, t('admin.title')), parts.length ? parts : h('p', { class: 'panel muted', id: 'admin-none' }, t('admin.none')));
}

async function users(ctx) {
  const { users } = await api('GET', '/users');
  const list = h('tbody', {}, users.map((u) => h('tr', {},
    h('td', {}, u.username), h('td', {}, t('role.' + u.role)), h('td', {}, u.area ? ctx.areaName(u.area) : t('scope.whole')), h('td', {}, fmtDateTime(u.created_at)),
    h('td', { class: 'row' }, h('button', {
      type: 'button', class: 'secondary', onclick: async () => {
        if (!(await confirmDialog(t('admin.signout_title', { user: u.username }), h('p', {}, t('admin.signout_body')), t('admin.signout'), true))) return;
        try { const r = await api('DELETE', `/users/${encodeURIComponent(u.username)}/sessions`); toast(t('admin.signed_out', { n: r.revoked })); } catch (err) { toast(errorText(err), true); }
      },
    }, t('admin.signout')), h('button', {
      type: 'button', class: 'secondary', onclick: async () => {
        const pw = h('input', { type: 'password', autocomplete: 'new-password', minlength: 10 });
        if (!(await confirmDialog(t('admin.reset_title', { user: u.username }), field(t('account.new'), pw, t('admin.reset_hint')), t('admin.reset'), true))) return;
        try { const r = await api('PUT', `/users/${encodeURIComponent(u.username)}/password`, { password: pw.value }); toast(t('admin.reset_done', { user: u.username, n: r.revoked })); } catch (err) { toast(errorText(err), true); }
      },
    }, t('admin.reset'))))));
  const username = h('input', { id: 'user-name', required: true, autocapitalize: 'none', pattern: '[a-z0-9._\\-]{3,32}' });
  const password = h('input', { id: 'user-password', type: 'password', required: true, minlength: 10, autocomplete: 'new-password' });
  const role = h('select', { id: 'user-role' }, options(['commune', 'district', 'province', 'technician', 'viewer', 'admin'].map((r) => [r, t('role.' + r)]), 'commune'));
  const area = h('select', { id: 'user-area' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const status = h('div', { id: 'user-status' });
  return h('section', { class: 'panel', 'aria-labelledby': 'h-users' }, h('h2', { id: 'h-users' }, t('admin.users')),
    h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, [t('login.username'), t('admin.role'), t('common.area'), t('admin.created'), ''].map((x) => h('th', {}, x)))), list)),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const u = await api('POST', '/users', { username: username.value.trim(), password: password.value, role: role.value, area: area.value });
          password.value = '';
          toast(t('admin.user_created', { user: u.username }));
          list.append(h('tr', {}, h('td', {}, u.username), h('td', {}, t('role.' + u.role)), h('td', {}, ctx.areaName(u.area)), h('td', {}, fmtDateTime(u.created_at)), h('td')));
          fill(status);
        } catch (err) { fill(status, errorBox(err)); }
      },
    }, h('h3', {}, t('admin.add_user')),
    h('div', { class: 'form-grid' }, field(t('login.username'), username, t('admin.username_hint')), field(t('login.password'), password, t('admin.password_hint')), field(t('admin.role'), role), field(t('common.area'), area)),
    h('button', { type: 'submit' }, t('admin.create_user')), status));
}

function areas(ctx, reload) {
  const id = h('input', { id: 'area-id', required: true, autocapitalize: 'none' });
  const name = h('input', { id: 'area-name', required: true, maxlength: 200 });
  const parent = h('select', { id: 'area-parent' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const status = h('div', { id: 'area-status' });
  return h('section', { class: 'panel', 'aria-labelledby': 'h-areas' }, h('h2', { id: 'h-areas' }, t('admin.areas')),
    h('ul', {}, ctx.areaOptions().map(([aid, label]) => h('li', { style: 'white-space:pre' }, `${label} (${aid})`))),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api('POST', '/areas', { id: id.value.trim(), name: name.value.trim(), parent: parent.value });
          await ctx.loadAreas();
          toast(t('admin.area_created', { name: name.value.trim() }));
          reload();
        } catch (err) { fill(status, errorBox(err)); }
      },
    }, h('h3', {}, t('admin.add_area')),
    h('div', { class: 'form-grid' }, field(t('admin.area_id'), id, t('admin.area_id_hint')), field(t('admin.area_name'), name), field(t('admin.parent'), parent)),
    h('button', { type: 'submit' }, t('admin.create_area')), status));
}

async function nodes(ctx) {
  const result = h('div', { id: 'enrol-result', 'aria-live': 'polite' });
  const showCode = (en) => fill(result, h('div', { class: 'panel', style: 'border:2px solid var(--ok)' },
    h('p', {}, t('admin.code_intro')), h('p', { class: 'stat', style: 'font-family:monospace' }, en.code),
    h('p', { class: 'hint' }, t('admin.code_expires', { time: fmtDateTime(en.expires_at) })), h('pre', { style: 'white-space:pre-wrap' }, en.command),
    // The board's own roots do not verify the controller's certificate:
    // the command's --ca names this file, saved on the board first.
    en.ca_pem ? h('p', { class: 'hint' }, t('admin.ca_hint')) : null,
    en.ca_pem ? h('a', { class: 'button secondary', href: URL.createObjectURL(new Blob([en.ca_pem], { type: 'application/x-pem-file' })), download: 'controller-ca.pem' }, t('admin.ca_download')) : null));
  const showDoc = (creds) => {
    const blob = new Blob([JSON.stringify(creds, null, 1)], { type: 'application/json' });
    fill(result, h('div', { class: 'panel', style: 'border:2px solid var(--ok)' }, h('p', {}, t('admin.doc_intro')),
      h('a', { class: 'button', href: URL.createObjectURL(blob), download: `${creds.node}.json` }, t('admin.doc_download'))));
  };
  const act = (n, verb) => async () => {
    if (verb !== 'enrolment' && !(await confirmDialog(t('admin.' + verb + '_title', { node: n.name }), h('p', {}, t('admin.' + verb + '_body')), t('admin.' + verb), true))) return;
    try {
      const r = await api('POST', `/nodes/${encodeURIComponent(n.id)}/${verb}`);
      if (r.enrolment) showCode(r.enrolment);
      else if (r.credentials && typeof r.credentials === 'object') showDoc(r.credentials);
      else toast(t('admin.revoked', { node: n.name }));
    } catch (err) { toast(errorText(err), true); return; }
    await redraw().catch((err) => toast(errorText(err), true));
  };
  // The table is read again after each change, leaving the code or file
  // just shown in place: after "Thu hồi" a revoked cluster read "Đang dùng
  // được", and one just enrolled was missing, with its buttons.
  const tbody = h('tbody');
  const redraw = async () => {
    const { nodes } = await api('GET', '/nodes');
    fill(tbody, nodes.map((n) => h('tr', { dataset: { node: n.id } }, h('td', {}, n.name, h('div', { class: 'hint' }, n.id)), h('td', {}, ctx.areaName(n.area)), h('td', {}, credentialsText(n.credentials)),
      h('td', { class: 'row' }, h('button', { type: 'button', class: 'secondary', onclick: act(n, 'enrolment') }, t('admin.enrolment')),
        h('button', { type: 'button', class: 'secondary', onclick: act(n, 'rotate') }, t('admin.rotate')),
        h('button', { type: 'button', class: 'danger', onclick: act(n, 'revoke') }, t('admin.revoke'))))));
  };
  await redraw();
  const id = h('input', { id: 'node-id', required: true, autocapitalize: 'none' });
  const name = h('input', { id: 'node-name', required: true, maxlength: 200 });
  const area = h('select', { id: 'node-area' }, options(ctx.areaOptions(), ctx.defaultArea()));
  const lat = h('input', { id: 'node-lat', type: 'number', step: 'any', min: -90, max: 90 });
  const lon = h('input', { id: 'node-lon', type: 'number', step: 'any', min: -180, max: 180 });
  const how = h('select', { id: 'node-credentials' }, options([['code', t('admin.by_code')], ['document', t('admin.by_document')]], 'code'));
  const status = h('div', { id: 'enrol-status' });
  return h('section', { class: 'panel', 'aria-labelledby': 'h-nodes' }, h('h2', { id: 'h-nodes' }, t('admin.nodes')),
    h('form', {
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          const r = await api('POST', '/nodes', { id: id.value.trim(), name: name.value.trim(), area: area.value, lat: Number(lat.value) || 0, lon: Number(lon.value) || 0, credentials: how.value });
          fill(status);
          if (r.enrolment) showCode(r.enrolment); else showDoc(r.credentials);
        } catch (err) { fill(status, errorBox(err)); return; }
        await redraw().catch((err) => toast(errorText(err), true));
      },
    }, h('h3', {}, t('admin.enrol')),
    h('div', { class: 'form-grid' }, field(t('admin.node_id'), id, t('admin.area_id_hint')), field(t('clusters.name'), name), field(t('common.area'), area),
      field(t('admin.lat'), lat), field(t('admin.lon'), lon), field(t('admin.credentials'), how)),
    h('button', { type: 'submit' }, t('admin.enrol_button')), status),
    result,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, [t('clusters.name'), t('common.area'), t('clusters.credentials'), ''].map((x) => h('th', {}, x)))),
      tbody)));
}
