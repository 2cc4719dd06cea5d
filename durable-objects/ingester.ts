import { DurableObject } from "cloudflare:workers";
export class Ingester extends DurableObject<Env> {
  ping(): string { return "pong"; }
}
