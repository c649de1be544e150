// The CommonJS side: a .cts file resolves the package's "require" types.
import { Tandem, TandemError } from '@tandem/node';

const tandem = new Tandem({ secretKey: 'sk_x', baseUrl: 'http://x' });
export async function count(): Promise<number> {
  try {
    return (await tandem.rooms.list().toArray()).length;
  } catch (error) {
    return error instanceof TandemError ? -error.status : 0;
  }
}
