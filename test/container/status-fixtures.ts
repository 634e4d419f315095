/** What the `restorable status` tests share: an S3 client on moto that records every listing it sends. */
import { S3Client } from '@aws-sdk/client-s3';
import { Moto } from '../support';

/** An S3 client that records the prefix (and delimiter, StartAfter) of every listing it sends. */
export function recordingClient(moto: Moto): { client: S3Client; listed: string[] } {
  const client = new S3Client(moto.config());
  const listed: string[] = [];
  client.middlewareStack.add((next, context) => (args) => {
    if (context.commandName === 'ListObjectsV2Command') {
      const input = args.input as { Prefix?: string; Delimiter?: string; StartAfter?: string };
      listed.push(`${input.Prefix}${input.Delimiter ? ' (delimited)' : ''}${input.StartAfter ? ` after ${input.StartAfter.slice(input.Prefix!.length)}` : ''}`);
    }
    return next(args);
  }, { step: 'initialize', name: 'recordListings' });
  return { client, listed };
}
