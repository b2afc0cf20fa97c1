/** Sampan's version, as its daemons and clients report it. */
export const VERSION = '0.1.0';
