/**
 * The web dashboard's public face: the browsers' listener (bearer tokens, the built pages under /ui/) and the
 * one live stream per browser. The manager mounts both over its own API and indexes; this component knows
 * nothing of the cluster's internals.
 */
export { UiServer, parseUiListen, isLoopback, refusal, LOGIN_PATH, UI_USER_HEADER, type UiRole, type UiServerOptions, type ApiHandler } from './server.js';
export { LiveFeed, type Topic, type KeyedTopic, type ValueTopic, type TopicDelta } from './feed.js';
