// The slice of Express's types the example needs (so the check installs neither Express
// nor @types/node).
export interface Req extends AsyncIterable<unknown> {
  method?: string;
  body?: unknown;
  headers: Record<string, string | string[] | undefined>;
}
export interface Res {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(chunk?: string): unknown;
}
export interface App {
  post(path: string, handler: (req: Req, res: Res) => unknown): void;
}
export default function express(): App {
  return { post() {} };
}
