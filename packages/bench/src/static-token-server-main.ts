/** Entry point of the static token server's child process (see `startStaticTokenServer`). */
import { runStaticTokenServerChild } from './static-token-server.js';

runStaticTokenServerChild();
