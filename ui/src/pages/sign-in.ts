import { h } from '../dom.js';
import type { Page } from '../router.js';
import type { Session } from '../session.js';

export function signInPage(session: Session, onChange: () => void): Page {
  return async (view) => {
    view.append(h('h1', {}, 'Sign in'));
    if (session.mode === 'open') {
      view.append(h('p', {}, 'Authentication is off on this registry: there is nothing to sign in to. ', h('a', { href: '#/' }, 'Browse the repositories')));
      return;
    }
    const error = h('p', { class: 'error', role: 'alert', hidden: true });
    const user = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
    const pass = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const submit = h('button', { type: 'submit' }, 'Sign in');
    const form = h(
      'form',
      { class: 'signin' },
      h('p', { class: 'muted' }, 'Use the user name and password (or robot name and secret) you give `docker login`.'),
      h('label', { for: 'username' }, 'User name'),
      user,
      h('label', { for: 'password' }, 'Password'),
      pass,
      error,
      submit,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      session
        .signIn(user.value.trim(), pass.value)
        .then(() => {
          onChange();
          location.hash = '#/';
        })
        .catch((err: unknown) => {
          error.textContent = err instanceof Error ? err.message : String(err);
          error.hidden = false;
          pass.select();
        })
        .finally(() => {
          submit.disabled = false;
        });
    });
    view.append(form);
    user.focus();
  };
}
